"""Getting the input: a real HTTP server on 127.0.0.1 in a thread, real Pillow checks."""

import io

import pytest
from PIL import Image

from ddctl.errors import DdctlError, UsageError
from ddctl.fetch import download, get_picture, open_local, safe_stem, verify_picture


def picture_bytes(fmt="JPEG", mode="RGB", size=(64, 48), **kw):
    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (200, 30, 30, 120)[: len(mode)]).save(buf, fmt, **kw)
    return buf.getvalue()


JPEG = picture_bytes()
HTML = b"<!DOCTYPE html><html><head><title>Cat</title></head><body><img src=x.jpg></body></html>"


@pytest.fixture(scope="module")
def server(http_server):
    routes = {
        "/cat.jpg": (200, {"Content-Type": "image/jpeg"}, JPEG),
        "/page": (200, {"Content-Type": "image/jpeg"}, HTML),  # lies about its type
        "/notes.txt": (200, {"Content-Type": "text/plain"}, b"just some words\n" * 10),
        "/cut.jpg": (200, {"Content-Type": "image/jpeg"}, JPEG[: len(JPEG) // 2]),
        "/big.jpg": (200, {"Content-Type": "image/jpeg"}, JPEG + b"\0" * 200_000),
        "/stream.jpg": (200, {"Content-Type": "image/jpeg", "Content-Length": None}, JPEG + b"\0" * 200_000),
        "/liar.jpg": (200, {"Content-Type": "image/jpeg", "Content-Length": "999999999"}, b""),
        "/go": (302, {"Location": "/cat.jpg"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/boom": (500, {}, b"oops"),
        "/huge.png": (200, {"Content-Type": "image/png"}, picture_bytes("PNG", "L", (3000, 3000))),
    }
    return http_server(routes).url


def write(path, data):
    path.write_bytes(data)
    return str(path)


def one_line(exc):
    msg = exc.value.message
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_a_picture_is_downloaded_and_named_after_the_url(server, tmp_path):
    p = download(server + "/cat.jpg", str(tmp_path))
    assert (p.width, p.height, p.format, p.stem) == (64, 48, "JPEG", "cat")
    assert open(p.path, "rb").read() == JPEG and p.path.startswith(str(tmp_path))


def test_a_redirect_is_followed_to_the_picture(server, tmp_path):
    p = download(server + "/go", str(tmp_path))
    assert p.format == "JPEG" and p.stem == "cat"


def test_404_is_one_line(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/nothing.jpg", str(tmp_path))
    assert "answered 404 Not Found" in one_line(e)


def test_a_server_error_is_one_line(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/boom", str(tmp_path))
    assert "answered 500" in one_line(e) and "try again later" in one_line(e)


def test_an_html_page_is_refused_whatever_its_content_type_says(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/page", str(tmp_path))
    assert "is an HTML page, not a picture" in one_line(e)


def test_text_is_refused(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/notes.txt", str(tmp_path))
    assert "is text, not a picture" in one_line(e)


def test_a_truncated_picture_is_refused(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/cut.jpg", str(tmp_path))
    assert "damaged or truncated" in one_line(e)


def test_too_large_a_download_stops_at_the_cap(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/stream.jpg", str(tmp_path), max_bytes=100_000)
    assert "larger than the 100 KB allowed" in one_line(e)
    with pytest.raises(UsageError) as e:
        download(server + "/big.jpg", str(tmp_path), max_bytes=100_000)
    assert "is 201 KB, more than the 100 KB allowed" in one_line(e)
    with pytest.raises(UsageError) as e:
        download(server + "/liar.jpg", str(tmp_path), max_bytes=100_000)
    assert "is 1000 MB, more than the 100 KB allowed" in one_line(e)


def test_too_many_pixels_is_refused(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/huge.png", str(tmp_path), max_pixels=1_000_000)
    assert "3000x3000 pixels, more than the 1,000,000 allowed" in one_line(e)


def test_a_pillow_decompression_bomb_is_refused(tmp_path):
    f = tmp_path / "bomb.png"
    f.write_bytes(picture_bytes("PNG", "1", (20000, 20000)))  # 400 Mpx in a few KB
    with pytest.raises(UsageError) as e:
        verify_picture(str(f), "bomb.png")
    assert "allowed" in one_line(e)


def test_redirect_loops_and_unreachable_hosts_are_one_line(server, tmp_path):
    with pytest.raises(UsageError) as e:
        download(server + "/loop", str(tmp_path))
    assert "redirects more than" in one_line(e)
    with pytest.raises(DdctlError) as e:
        download("http://127.0.0.1:9/cat.jpg", str(tmp_path))
    assert "Cannot reach 127.0.0.1" in one_line(e) and "Connection refused" in one_line(e)


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://example.org/x.jpg", "only http:// and https://"),
        ("http:///x.jpg", "no host"),
    ],
)
def test_unusable_addresses_are_usage_errors(url, words, tmp_path):
    with pytest.raises(UsageError) as e:
        download(url, str(tmp_path))
    assert words in one_line(e)


@pytest.mark.parametrize(
    "fmt, mode, kw",
    [
        (
            "JPEG",
            "RGB",
            {
                "exif": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"
            },
        ),
        ("PNG", "RGBA", {}),
        ("PNG", "L", {}),
        ("JPEG", "L", {}),
        ("WEBP", "RGB", {}),
        ("GIF", "P", {}),
    ],
)
def test_pictures_users_really_have_are_accepted(tmp_path, fmt, mode, kw):
    f = tmp_path / f"in put.{fmt.lower()}"
    f.write_bytes(picture_bytes(fmt, mode, (40, 30), **kw))
    p = get_picture(str(f), str(tmp_path))
    assert (p.format, p.width, p.height, p.stem) == (fmt, 40, 30, "in_put")


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: str(d / "missing.jpg"), "no such file"),
        (lambda d: str(d), "is not a file"),
        (lambda d: write(d / "empty.jpg", b""), "is empty"),
        (lambda d: write(d / "page.jpg", HTML), "HTML page"),
        (lambda d: write(d / "x.bin", bytes(range(256)) * 4), "not a picture"),
    ],
)
def test_local_files_are_checked_the_same_way(tmp_path, make, words):
    with pytest.raises(UsageError) as e:
        open_local(make(tmp_path))
    assert words in one_line(e)


@pytest.mark.parametrize(
    "name, stem",
    [
        ("/a/b/Cat photo (1).JPG", "Cat_photo_1"),
        ("/", "picture"),
        ("%%%.png", "picture"),
        ("x" * 100 + ".jpg", "x" * 60),
        ("Müller-Straße.jpg", "Müller-Straße"),  # letters of any script are kept
        ("/photos/Mu\u0308ller.png", "Müller"),  # NFC: a Mac's decomposed ü is one letter
        ("Ελλάδα 2015.jpg", "Ελλάδα_2015"),
        ("हिन्दी.png", "हिन्दी"),  # combining marks too
        ("a\u202egnp.exe.png", "a_gnp.exe"),  # a right-to-left override is not kept
        ("tab\there\x7f.png", "tab_here"),  # control characters
        ("back\\slash.png", "back_slash"),
        ("--weird.png", "weird"),
        (".hidden.png", "hidden"),
        ("a" * 59 + " b.png", "a" * 59),  # never ends with _ after the cut
        ("雪" * 70 + ".png", "雪" * 40),  # at most 120 bytes of UTF-8
    ],
)
def test_stems_are_safe_file_names(name, stem):
    assert safe_stem(name) == stem
    assert len(stem.encode("utf-8")) <= 120 and not any(c in stem for c in "/\\\0")
