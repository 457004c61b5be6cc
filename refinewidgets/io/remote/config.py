"""Where refine.bio's client finds its address, token and e-mail: pyrefinebio's configuration.

Read as AlexsLemonade/refinebio-py reads it (``pyrefinebio/config.py``, class ``Config``, commit
770d3f6efcc82c47a1b2ba885c564388403f340e): the file is ``$REFINEBIO_CONFIG_FILE``, else
``~/.refinebio.yaml`` (YAML, ``yaml.safe_load``); the token is ``$REFINEBIO_TOKEN``, else
``token:`` in the file; the API address is ``$REFINEBIO_BASE_URL``, else ``base_url:`` in the
file, else ``https://api.refine.bio/v1/``. So one token serves both clients. We add
``$REFINEWIDGETS_REFINEBIO_API`` (ours, for tests and the app), which wins over them, and
``$REFINEBIO_EMAIL`` / ``email:`` for the address refine.bio mails when a dataset is ready.

Kept apart from :mod:`.refinebio` (which imports pandas and the cache) so that the command line
can say where it is going before it loads the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import TokenError

__all__ = [
    "API_ENV",
    "BASE_URL_ENV",
    "CONFIG_ENV",
    "DEFAULT_API",
    "EMAIL_ENV",
    "TOKEN_ENV",
    "api_address",
    "config_path",
    "read_config",
    "write_config",
]

#: Ours: the API address for tests and the app (wins over pyrefinebio's settings).
API_ENV = "REFINEWIDGETS_REFINEBIO_API"
# pyrefinebio/config.py (770d3f6e): os.getenv("REFINEBIO_BASE_URL") or config.get("base_url", ...)
BASE_URL_ENV = "REFINEBIO_BASE_URL"
# pyrefinebio/config.py (770d3f6e): the default base_url
DEFAULT_API = "https://api.refine.bio/v1/"
# pyrefinebio/config.py (770d3f6e): os.getenv("REFINEBIO_TOKEN") or config.get("token", "")
TOKEN_ENV = "REFINEBIO_TOKEN"
#: Ours: the e-mail address refine.bio needs to process a dataset.
EMAIL_ENV = "REFINEBIO_EMAIL"
# pyrefinebio/config.py (770d3f6e): os.getenv("REFINEBIO_CONFIG_FILE") or ~/.refinebio.yaml
CONFIG_ENV = "REFINEBIO_CONFIG_FILE"


def config_path() -> Path:
    """pyrefinebio's configuration file: ``$REFINEBIO_CONFIG_FILE`` or ``~/.refinebio.yaml``.

    Examples
    --------
    >>> import os
    >>> os.environ["REFINEBIO_CONFIG_FILE"] = "/tmp/rb.yaml"
    >>> str(config_path())
    '/tmp/rb.yaml'
    >>> del os.environ["REFINEBIO_CONFIG_FILE"]
    """
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".refinebio.yaml").expanduser()


def read_config() -> dict:
    """The configuration file's mapping (empty when there is none); a TokenError names a file
    that is not YAML."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return {}
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TokenError(f"{path} is not valid YAML ({exc}); fix or remove it.") from None
    return data if isinstance(data, dict) else {}


def write_config(updates: Mapping[str, str]) -> Path:
    """Merge ``updates`` into the configuration file (written atomically, mode 0600)."""
    import yaml

    path = config_path()
    data = {**read_config(), **updates}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, default_flow_style=False)
    os.replace(tmp, path)
    return path


def api_address(api: str | None = None) -> tuple[str, str]:
    """``(address, where it came from)`` of refine.bio's API: the ``api=`` argument, else
    ``$REFINEWIDGETS_REFINEBIO_API``, else ``$REFINEBIO_BASE_URL``, else ``base_url:`` in the
    configuration file, else the default.

    Examples
    --------
    >>> api_address("http://127.0.0.1:9/v1/")
    ('http://127.0.0.1:9/v1/', 'the api= argument')
    """
    if api:
        return api, "the api= argument"
    for name in (API_ENV, BASE_URL_ENV):
        if os.environ.get(name):
            return os.environ[name], f"${name}"
    url = read_config().get("base_url")
    if url:
        return str(url), f"base_url in {config_path()}"
    return DEFAULT_API, f"the default (set ${BASE_URL_ENV} to change it)"
