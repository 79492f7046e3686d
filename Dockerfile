# zfsapi in a container. ZFS itself stays on the host: the container needs /dev/zfs, privileges, and zfs
# userland of the same series as the host's kernel module (Debian bookworm-backports: 2.3).
FROM debian:bookworm-slim
RUN sed -i 's/^Components: main$/Components: main contrib/' /etc/apt/sources.list.d/debian.sources \
 && echo 'deb http://deb.debian.org/debian bookworm-backports main contrib' > /etc/apt/sources.list.d/backports.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && apt-get install -y --no-install-recommends -t bookworm-backports zfsutils-linux \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .
ENTRYPOINT ["/opt/venv/bin/zfsapi", "serve"]
