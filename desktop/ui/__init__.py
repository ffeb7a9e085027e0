"""PySide6 widgets and pyqtgraph charts: the only package that draws."""
