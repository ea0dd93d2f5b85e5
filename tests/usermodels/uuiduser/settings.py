"""Settings with another user model; tests/usermodels/README.md says which and why."""

from cliproject.settings import *  # noqa: F403
from tests.usermodels.settings import with_user_model

with_user_model(globals(), app="tests.usermodels.uuiduser", model="uuiduser.UUIDUser")
