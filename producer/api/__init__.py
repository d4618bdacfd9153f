"""The farm's HTTP service: `voxfarm api` (and `voxfarm serve` on one machine).

A FastAPI app versioned under ``/v1``: books in, progress out (JSON and
Server-Sent Events), output files with Range support, voices, an
OpenAI-compatible ``POST /v1/audio/speech``, and the web console. Only this
service's token checks stand between a caller and the farm, so it is the only
part outside the farm that needs no broker or storage credentials.
"""
