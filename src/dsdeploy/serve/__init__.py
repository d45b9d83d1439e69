"""`dsdeploy serve`: an OpenAI-compatible HTTP API in front of llama.cpp worker processes (or, with
`--engine vllm|sglang`, a thin supervisor around the engine's own server). See docs/serve.md."""
