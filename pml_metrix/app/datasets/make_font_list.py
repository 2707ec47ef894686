"""Regenerate the committed font list: ``python -m pml_metrix.app.datasets.make_font_list``.

Needs Debian with the packages of ``FONT_PACKAGES`` installed (see ``install_command``).
"""

import argparse

from .font_list import FONT_LIST_PATH, build_font_list, write_font_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=FONT_LIST_PATH, help="where to write the list")
    args = parser.parse_args()
    faces = build_font_list()
    write_font_list(faces, args.output)
    print(f"{len(faces)} faces in {len({face.family for face in faces})} families written to {args.output}")


if __name__ == "__main__":
    main()
