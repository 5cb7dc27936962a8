"""Blind perceptual studies of ×4 super-resolution methods: mean opinion scores (ACR) and pair comparisons (2AFC).

``db`` stores studies, stimuli, raters, ratings and choices; ``studies`` creates, lists, opens and closes studies,
whose stimuli ``stimuli`` makes; ``raters`` runs the rater flow in the random orders ``schedule`` draws; ``errors``
holds the errors meant for users; ``stats`` turns ratings into MOS, confidence intervals (Student t and a rater ×
image cluster bootstrap), DMOS, Wilcoxon tests and rater screening; ``pairwise`` turns choices into Bradley–Terry
scores, win rates and sign tests; ``export`` reads a study into pandas and writes CSV files; ``charts`` and
``report`` draw the results (SVG) and write the HTML report; ``ui`` holds the rater page (served beside the Gradio
app, outside its queue) and the Results tab.
"""
