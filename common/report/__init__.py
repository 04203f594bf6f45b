"""The reviewers' comparison of runs (`make report` -> results/report.html, notebooks_src/report.py).

Every number is computed from the per-file scores a run wrote (`eval_per_file.csv`): means with
95% bootstrap intervals, paired differences over the same files, distributions.
`runs` reads and checks the runs, `compare` computes what they are compared by, `tables`,
`figures` and `listening` are the report's sections.
"""
