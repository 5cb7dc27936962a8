"""The survey's Gradio tabs: ``rate`` for raters, ``results`` for the admin."""
