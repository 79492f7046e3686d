"""The JSON-RPC protocol of zfsapi, shared by the server's inbound adapters, the outbound replica on another
zfsapi and the command-line client: the error codes and what each means (`codes`), the envelope (`envelope`),
domain errors to and from error objects (`codec`), the HTTP status of an error on the plain routes (`status`)
and the client (`client`, with a blocking face in `blocking`). It imports the domain and nothing else of ours."""
