"""`trainkit update`: move an architecture to the installed template, keeping the researcher's
edits.

How it works (README "Update an architecture"): `trainkit new` (the template's post-gen hook)
leaves `.trainkit-answers.json` in the architecture directory (record.py). `trainkit update`
bakes the template that made the architecture with the recorded answers (base) and the
installed template with the same answers (theirs), both in temp dirs (versions.py), and
merges base -> theirs into the architecture's files line by line (merge.py, plan.py). The
changes are applied as one transaction with rollback (apply.py); command.py is the CLI.
Templates of earlier releases it can update from are shipped in history/.
"""
