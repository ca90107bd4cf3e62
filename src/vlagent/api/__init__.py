"""The agent over HTTP: an FastAPI app (``/v1/answer``, OpenAI-compatible ``/v1/chat/completions``,
``/health``), the service both it and the web UI share, and the graph ``langgraph dev`` serves."""
