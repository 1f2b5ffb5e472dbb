"""The trained network compiled for production: one inference graph, engines behind one interface."""
