"""The notebook layer: the kernel's SMTP session, the IPython magics and their views.

``smtp_nb.notebook.session`` imports no IPython and works from any Python code;
``extension`` and ``magics`` need the ``notebook`` extra.
"""
