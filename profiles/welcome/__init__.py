"""The welcome mail: one :class:`~profiles.models.WelcomeMail` record per user.

- :mod:`.records`: the field values of a new record, and the one-row write the
  post_save receiver makes inside the saving transaction;
- :mod:`.joined`: when a user joined, for the rollout cutoff and date ranges;
- :mod:`.message`: the message itself and its deterministic Message-ID;
- :mod:`.sync`: the set-based reconcile (``welcome_mails sync``) and the
  explicit suppression of a range (``welcome_mails suppress``);
- :mod:`.delivery`: the lease, the send over one connection, the retries;
- :mod:`.tasks`: delivery through Django's Tasks framework;
- :mod:`.selectors`: counts per state, for ``status`` and ``profiles_status``.
"""
