"""The resolution study: which image and spectrum level gives the best accuracy for its cost.

``grid`` plans the trainings (model x levels x seed), longest first; ``record`` keeps the finished
ones (resumable, each once); ``task`` is what one training does on a Dask worker; ``report`` turns
the record into tables and plots. The stage that runs it all is :mod:`sfrdask.stages.study`.
"""
