"""`dsdeploy bench`: a load generator for OpenAI-compatible endpoints, with vLLM-compatible
metrics (`metrics`), the streaming client (`client`), the sweep (`runner`), synthetic prompts
(`prompts`) and scenario-schema recording (`record`)."""
