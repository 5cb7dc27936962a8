"""The Gradio tabs of the app; each module lays out one tab and holds its event handlers."""
