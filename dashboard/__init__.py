"""The Dash application: pages read only through query/, never write."""
