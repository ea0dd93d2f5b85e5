from django.apps import AppConfig


class StrictUserConfig(AppConfig):
    name = "tests.usermodels.strictuser"
    label = "strictuser"
    default_auto_field = "django.db.models.BigAutoField"
