"""The Gradio app: browse how the reranker ranked each problem's candidates, label hard negatives as a
team, launch and follow the next iteration, read the metrics, export the curated dataset.
`python app.py` or `python -m lab app` (server.main); `layout.build_app` makes the Blocks.

  state.py    the Lab (directory, store, launcher) and the View, one tab's state object
  views.py    reads for the pages and the tables built from them (no Gradio, no HTML)
  render.py   the HTML of problems, candidates, history, side-by-side, job stages
  review.py   Review: choose, filter, page, step, deep links, refresh on others' labels
  labels.py   labels with conflicts, undo, bulk labels; the HTTP API's label calls
  jobs.py     Iterate: the form, launch, progress, cancel
  metrics.py  Metrics: plots in steps, annotators and kappa, the run comparison
  export.py   Export: the curated dataset's files for download
  layout.py   components and wiring only
  server.py   serving and the command line
  static/     the page's CSS and JavaScript

Not covered here: anything the loop does, the store's rules (lab/store/), the figures (plots.py).
"""
