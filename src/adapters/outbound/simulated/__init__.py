"""A simulated ZFS in memory: the ports the real gateway, pipelines and policy ops fill, answered as the contract
suites (tests/zfs_contract.py, tests/policy_zfs_contract.py) hold real OpenZFS to. It serves
`zfsapi serve --simulate` (bootstrap/simulate.py: a small seeded pool pair, lost at exit) and every unit test
(tests/fakes.py)."""
