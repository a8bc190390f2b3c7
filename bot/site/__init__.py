"""The company's demo site: the page with the chat widget and the demo login (`web/`)."""
