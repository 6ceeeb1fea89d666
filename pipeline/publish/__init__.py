"""Publish: the history report stakeholders read. Its tables in every format (`history`), the
HTML page and Markdown (`html`), the charts (`charts`), the one builder of report folders
(`build`), where each folder lands so a mailed report never changes (`versions`), and its
delivery by mail (`mail`)."""
