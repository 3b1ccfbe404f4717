"""The report users read: plots, styled tables and one self-contained HTML page of a benchmark run.

- ``palette``: one colour per method, the same in every plot and table;
- ``results``: what the workflow wrote (metrics, leaderboards, benchmarks), read into plot-ready tables;
- ``slices``: a representative slice of a registration (warped image, grid, det J, uncertainty);
- ``plots``: one function per figure, arrays and tables in, a matplotlib ``Figure`` out (no pyplot state);
- ``tables``: leaderboards as styled HTML (best per column marked, failed cases counted);
- ``environment``: the software and hardware a report was made with;
- ``html``: the page itself; ``build``: what the workflow's ``plots`` and ``report`` rules call.
"""
