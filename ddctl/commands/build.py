"""`ddctl build`: parsing and rendering only (the work is ddctl/build.py)."""

from ddctl.build import human_size
from ddctl.commands.common import build_with_view, connect, warn_if_untrained
from ddctl.context import find_context
from ddctl.image import DEFAULT_TAG, check_build_tag, check_tag, weights_buildargs


def add_parser(sub):
    p = sub.add_parser(
        "build",
        help="build the dream image (Caffe, GoogLeNet weights, the engine)",
        description="Build the dream image through the Docker API, with live progress.",
    )
    p.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag (default {DEFAULT_TAG})")
    p.add_argument(
        "--weights",
        default="download",
        metavar="download|untrained|PATH",
        help="where the GoogLeNet weights come from: download them (SHA1-checked, the "
        "default), untrained (Caffe-initialised, for tests), or a .caffemodel file",
    )
    p.add_argument("--weights-url", metavar="URL", help="download the weights from URL instead")
    p.add_argument("--weights-sha1", metavar="HEX", help="the SHA1 the file at --weights-url must have")
    p.add_argument("--no-cache", action="store_true", help="rebuild every step")
    p.set_defaults(func=run)
    return p


def render_summary(ui, s):
    ui.out.print(f"built {s.tag}", markup=False, highlight=False, soft_wrap=True)
    ui.out.print(f"  image    {s.image_id.split(':')[-1][:12]}", markup=False, highlight=False)
    ui.out.print(f"  size     {human_size(s.size)}", markup=False, highlight=False)
    weights = s.weights + (f" (sha1 {s.weights_sha1})" if s.weights_sha1 else "")
    ui.out.print(f"  weights  {weights}", markup=False, highlight=False, soft_wrap=True)
    ui.out.print(f"  time     {s.seconds:.0f} s", markup=False, highlight=False)
    warn_if_untrained(ui, s.tag, s.weights)


def run(args, ui):
    # Everything that needs no Docker first: the weights options, the build context.
    check_tag(args.tag)
    weights = weights_buildargs(args.weights, args.weights_url, args.weights_sha1)
    find_context()
    _ep, client = connect()
    check_build_tag(client, args.tag)  # never move the name of an image ddctl did not build
    summary = build_with_view(ui, client, args.tag, weights=weights, nocache=args.no_cache)
    render_summary(ui, summary)
    return 0
