"""``postbox-desk``: the desk client of caseworkers and org admins (:mod:`postbox.desk.cli`)."""
