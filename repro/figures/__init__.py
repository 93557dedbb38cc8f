"""The figures of the AutoLR paper (Kwatra et al., ICLR 2020 submission), redrawn from results/ CSVs.

`registry.FIGURES` lists the 20 figures and the runs each needs. `build.build_figures` draws every
figure whose runs exist and reports the others with the commands that would produce their data.
Figures read only the files a run writes (config.yaml, run.json and the CSVs whose columns
`repro.results.schema` declares), never live objects.
"""
