"""The pipeline's steps, one module per rules file (rules/<stage>.smk -> qdff/steps/<stage>.py):
functions of files that read their inputs, write their outputs atomically and log what they
did. Each is what a rule's script (scripts/<rule>.py) and the ``qdff`` command call."""
