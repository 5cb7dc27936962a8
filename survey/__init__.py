"""Blind mean-opinion-score surveys of ×4 super-resolution methods.

``db`` stores studies, stimuli, raters and ratings; ``studies`` creates studies and runs the rater flow;
``stats`` turns ratings into MOS, confidence intervals, DMOS, Wilcoxon tests and rater screening; ``export``
reads a study into pandas and writes CSV files; ``ui`` holds the Survey and Results tabs of the Gradio app.
"""
