"""imgclf's clients: the Streamlit app (app.py) and the bulk command (cli.py).

Both talk to the API over HTTP only, through :mod:`frontend.client`, like any other client.
"""
