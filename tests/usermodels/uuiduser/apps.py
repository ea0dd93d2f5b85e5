from django.apps import AppConfig


class UUIDUserConfig(AppConfig):
    name = "tests.usermodels.uuiduser"
    label = "uuiduser"
    default_auto_field = "django.db.models.BigAutoField"
