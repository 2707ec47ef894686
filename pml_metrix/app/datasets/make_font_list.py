"""Regenerate the committed font list and its attribute table: ``python -m pml_metrix.app.datasets.make_font_list``;
with ``--attributes-only``, only the attribute table of the committed list.

Needs Debian with the packages of ``FONT_PACKAGES`` installed (see ``install_command``), and fontconfig's
``fc-query`` for the attribute table.
"""

import argparse

from .font_attributes import FONT_ATTRIBUTES_PATH, query_font_attributes, write_font_attributes
from .font_list import FONT_LIST_PATH, build_font_list, read_font_list, write_font_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=FONT_LIST_PATH, help="where to write the list")
    parser.add_argument("--attributes-output", default=FONT_ATTRIBUTES_PATH, help="where to write the attribute table")
    parser.add_argument("--attributes-only", action="store_true",
                        help="keep the list at --output and write only the attribute table of its faces")
    args = parser.parse_args()
    if args.attributes_only:
        faces = read_font_list(args.output)
    else:
        faces = build_font_list()
        write_font_list(faces, args.output)
        print(f"{len(faces)} faces in {len({face.family for face in faces})} families written to {args.output}")
    write_font_attributes(query_font_attributes(faces), args.attributes_output)
    print(f"the attributes of {len(faces)} faces written to {args.attributes_output}")


if __name__ == "__main__":
    main()
