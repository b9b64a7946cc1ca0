"""python -m dashboard: serve on the configured host and port (development server; gunicorn in production)."""
import sys

from core.errors import ConfigError


def main() -> int:
    try:
        from dashboard.app import create_app
        app = create_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from query import store
    d = store.config().settings.dashboard
    app.run(host=d.host, port=d.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
