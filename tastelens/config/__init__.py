"""Every setting's one home: the settings (:mod:`.settings`: explicit value > environment
``TASTELENS_*`` > settings file > default), the pipeline's config (:mod:`.pipeline`), the
chat's (:mod:`.chat`), the collaborative models' (:mod:`.models`) and the base they share
(:mod:`.base`: :class:`~.base.ConfigSection`, TOML reading, validation messages)."""
