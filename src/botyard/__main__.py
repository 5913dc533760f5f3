"""``python -m botyard``."""

from botyard.cli import main

if __name__ == "__main__":
    main()
