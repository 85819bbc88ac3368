"""One module per recipe section. Each holds pydantic models only: no heavy imports."""
