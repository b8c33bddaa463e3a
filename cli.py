"""``python cli.py ...`` works the same as the installed ``adelabel`` command."""
from adelabel.cli import main

if __name__ == "__main__":
    main()
