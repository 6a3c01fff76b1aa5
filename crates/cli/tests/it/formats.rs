//! Playlists from other apps' files (M3U, XSPF, CSV) and to them (`export --format`).

use crate::support::*;

fn refused(node: &Node, args: &[&str], expected: &str) {
    let out = node.cli(args);
    assert!(!out.status.success(), "{args:?} was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expected), "{args:?}: {err}");
}

fn titles(node: &Node, id: &str) -> Vec<String> {
    cli_json(node, &["playlist", "show", id])["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn m3u_xspf_and_csv_import_and_a_broken_file_imports_nothing() {
    let a = Node::start();
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("path").to_string()
    };
    // Named by what is in them: the XSPF and the CSV have a .txt name.
    let m3u = write(
        "Road Trip.m3u8",
        "#EXTM3U\n#EXTINF:225,Queen - Bohemian Rhapsody\n/music/queen.mp3\n#EXTINF:-1,Blur - Song 2\nhttps://example.com/song2\n",
    );
    let xspf = write(
        "friday.txt",
        "<?xml version=\"1.0\"?>\n<playlist version=\"1\" xmlns=\"http://xspf.org/ns/0/\"><title>Friday</title><trackList>\n<track><title>Hey &amp; Ho</title><creator>Ann</creator><duration>61000</duration></track>\n</trackList></playlist>\n",
    );
    let csv = write(
        "beatles.txt",
        "Track Name,Artist Name(s),Album Name,Duration (ms),Track URI\n\"Hey, Jude\",The Beatles,Single,431000,spotify:track:1\n",
    );

    let id = cli_json(&a, &["playlist", "import", &m3u])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let shown = cli_json(&a, &["playlist", "show", &id]);
    assert_eq!(shown["name"], "Road Trip", "named after the file: {shown}");
    assert_eq!(titles(&a, &id), ["Bohemian Rhapsody", "Song 2"]);
    assert_eq!(shown["tracks"][0]["artists"], serde_json::json!(["Queen"]));
    assert_eq!(shown["tracks"][0]["duration_ms"], 225_000);
    assert_eq!(shown["tracks"][1]["uri"], "https://example.com/song2");

    let id = cli_json(&a, &["playlist", "import", &xspf])["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(cli_json(&a, &["playlist", "show", &id])["name"], "Friday");
    assert_eq!(titles(&a, &id), ["Hey & Ho"]);

    let id = cli_json(&a, &["playlist", "import", &csv])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let shown = cli_json(&a, &["playlist", "show", &id]);
    assert_eq!(titles(&a, &id), ["Hey, Jude"]);
    assert_eq!(shown["tracks"][0]["uri"], "spotify:track:1");
    // A second import of the same file is another playlist (foreign files have no id).
    cli_json(&a, &["playlist", "import", &csv]);
    let count = || {
        cli_json(&a, &["playlist", "list"])
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(count(), 4);

    // Broken files: a clear error, nothing imported.
    let broken_xml = write(
        "broken.xspf",
        "<?xml version=\"1.0\"?><playlist><trackList><track><title>A</title></trackList>",
    );
    refused(&a, &["playlist", "import", &broken_xml], "XML is broken");
    let no_title = write("people.csv", "who,age\nAnn,3\n");
    refused(
        &a,
        &["playlist", "import", &no_title],
        "no column is the title",
    );
    let empty = write("empty.m3u", "#EXTM3U\n");
    refused(&a, &["playlist", "import", &empty], "lists no track");
    assert_eq!(count(), 4, "nothing imported from the broken files");
}

#[test]
fn export_as_m3u_and_xspf_reads_back() {
    let a = Node::start();
    let id = cli_json(&a, &["playlist", "create", "Mix & Match"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    add_track(&a, &id, "First <one>");
    add_track(&a, &id, "Second");
    let dir = tempfile::tempdir().expect("dir");
    for format in ["m3u", "xspf"] {
        let file = dir.path().join(format!("out.{format}"));
        let file = file.to_str().expect("path");
        let out = a.cli(&["playlist", "export", &id, "--format", format, "--out", file]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(file).expect("exported");
        let head = if format == "m3u" { "#EXTM3U" } else { "<?xml" };
        assert!(text.starts_with(head), "{text}");
        let back = cli_json(&a, &["playlist", "import", file])["id"]
            .as_str()
            .expect("id")
            .to_string();
        assert_ne!(back, id);
        assert_eq!(
            cli_json(&a, &["playlist", "show", &back])["name"],
            "Mix & Match"
        );
        assert_eq!(titles(&a, &back), ["First <one>", "Second"]);
    }
    refused(&a, &["playlist", "export", &id, "--format", "wav"], "wav");
}
