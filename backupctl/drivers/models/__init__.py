"""The ``model`` driver: versioned, content-addressed copies of AI model directories."""
