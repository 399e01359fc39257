"""Using a trained model: evaluate, encode, export, serve, ship."""
