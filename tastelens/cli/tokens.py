"""`tastelens token issue|list|revoke`: the per-user tokens of the HTTP API.

A token reaches one user's data through `tastelens api` (their profile, taste, recommendations
and chat) and nothing else; the operator key (settings api.api_key) reaches everyone. Tokens
are kept per dataset, hashed (:mod:`tastelens.user_tokens`); the running API sees a new or
revoked token at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from tastelens.cli.common import DataOption, console, settings_from

app = typer.Typer(no_args_is_help=True)

UserOption = Annotated[str, typer.Option("--user", help="The dataset's user id.")]


def _store_path(ctx: typer.Context, data: Path | None, user: str | None = None) -> Path:
    """The dataset's token store; checks ``user`` is one of its users."""
    from tastelens.data import load_dataset, resolve_data_path
    from tastelens.errors import UnknownIdError
    from tastelens.user_tokens import default_tokens_path

    settings = settings_from(ctx)
    dataset = load_dataset(resolve_data_path(settings, data))
    if user is not None and user not in set(dataset.user_ids):
        raise UnknownIdError(f"unknown user id {user!r} in dataset {dataset.name!r}; a token "
                             "is issued for one of its users")
    return default_tokens_path(settings.cache_dir, dataset.name)


@app.command("issue")
def issue(
    ctx: typer.Context,
    user: UserOption,
    note: Annotated[str, typer.Option("--note", help="Who it is for (shown by list).")] = "",
    data: DataOption = None,
) -> None:
    """Make a token for one user and print it (once: only its hash is kept)."""
    from tastelens.user_tokens import TokenStore

    with TokenStore(_store_path(ctx, data, user)) as store:
        record, token = store.issue(user, note)
    console.print(f"token {record.id} for user {user} (shown once; revoke with `tastelens "
                  f"token revoke {record.id}`):", highlight=False)
    # Plain print: no wrapping or markup, so the line copies as is.
    print(token)


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    user: Annotated[Optional[str], typer.Option("--user", help="Only this user's.")] = None,
    data: DataOption = None,
) -> None:
    """The tokens issued (never the tokens themselves): id, user, note, made, revoked."""
    from tastelens.user_tokens import TokenStore

    path = _store_path(ctx, data)
    if not path.is_file():
        console.print(f"no tokens issued yet ({path} does not exist)", highlight=False)
        return
    table = Table("id", "user", "note", "issued", "revoked")
    with TokenStore(path) as store:
        for t in store.tokens(user):
            table.add_row(t.id, t.user, t.note, t.created_at, t.revoked_at or "")
    console.print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[Optional[str], typer.Argument(
        help="The token's id (tok_…, from `tastelens token list`).")] = None,
    user: Annotated[Optional[str], typer.Option(
        "--user", help="Revoke every token of this user instead.")] = None,
    data: DataOption = None,
) -> None:
    """Revoke one token, or all of a user's; the API refuses it from the next request on."""
    from tastelens.errors import ConfigError
    from tastelens.user_tokens import TokenStore

    if (token_id is None) == (user is None):
        raise ConfigError("give a token id or --user (one of them)")
    with TokenStore(_store_path(ctx, data)) as store:
        if token_id is not None:
            record = store.revoke(token_id)
            console.print(f"revoked {record.id} (user {record.user}, at {record.revoked_at})",
                          highlight=False)
        else:
            assert user is not None
            console.print(f"revoked {store.revoke_user(user)} token(s) of user {user}",
                          highlight=False)
