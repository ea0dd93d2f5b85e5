from django.apps import AppConfig


class SwitchesConfig(AppConfig):
    name = "switches"
    verbose_name = "Receiver switches"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from switches import checks, wrapping

        checks.register()
        # Last in INSTALLED_APPS, so the other apps' ready() have connected
        # their receivers by now.
        wrapping.wrap_connected(wrapping.extra_names())
