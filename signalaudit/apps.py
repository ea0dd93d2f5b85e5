from django.apps import AppConfig
from django.conf import settings


class SignalAuditConfig(AppConfig):
    name = "signalaudit"
    verbose_name = "Signal audit"

    def ready(self) -> None:
        from signalaudit import processwide

        # Checked even when off: a mistyped SIGNAL_AUDIT stops start-up instead of auditing nothing.
        mode = processwide.mode_from(getattr(settings, "SIGNAL_AUDIT", None))
        if mode != "off":  # off: nothing is connected, nothing costs
            processwide.enable(mode)
