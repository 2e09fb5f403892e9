#!/usr/bin/env python3
"""An LVM logical volume's content, placed into or gathered from its PV image files without
device-mapper (the host building an e2e scenario need not have dm).

  lv-image.py map SEGMENTS_JSON PVS_JSON EXTENT_SECTORS DEVICE=IMAGE[+SECTORS]... > MAP
      from `lvs --segments --reportformat json --units s --nosuffix -o seg_start,seg_size,stripes,
      stripe_size,seg_pe_ranges` and `pvs ... -o pv_name,pe_start`: one line per segment,
      "START LENGTH CHUNK IMAGE:SECTOR..." (sectors; CHUNK 0 for a linear segment)
  lv-image.py write MAP LV_IMAGE   writes LV_IMAGE's bytes where the LV keeps them (zero chunks skipped:
                                   the PV images start out sparse)
  lv-image.py read MAP LV_IMAGE    gathers the LV into LV_IMAGE (sparse)
"""
import json
import sys

SECTOR = 512


def report_rows(path, section):
    with open(path) as f:
        return json.load(f)["report"][0][section]


def make_map(segments_json, pvs_json, extent, pairs):
    # DEVICE=IMAGE or DEVICE=IMAGE+SECTORS: the PV is a partition starting that far into the image.
    images = {}
    for pair in pairs:
        device, image = pair.split("=", 1)
        base = 0
        if "+" in image:
            image, base = image.rsplit("+", 1)
        images[device] = (image, int(base))
    pe_start = {r["pv_name"]: int(r["pe_start"]) for r in report_rows(pvs_json, "pv")}
    for row in report_rows(segments_json, "seg"):
        places = []
        for pe_range in row["seg_pe_ranges"].split():
            device, extents = pe_range.rsplit(":", 1)
            first = int(extents.split("-")[0])
            image, base = images[device]
            places.append(f"{image}:{base + pe_start[device] + first * extent}")
        chunk = int(row["stripe_size"]) if int(row["stripes"]) > 1 else 0
        print(row["seg_start"], row["seg_size"], chunk, " ".join(places))


def pieces(map_path):
    """(LV byte offset, image, image byte offset, length) for every linear run or stripe chunk."""
    with open(map_path) as f:
        for line in f:
            start, length, chunk, *places = line.split()
            start, length, chunk = int(start), int(length), int(chunk)
            stripes = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in places]
            step = length if chunk == 0 else chunk
            for k in range(length // step):
                image, at = stripes[k % len(stripes)]
                yield ((start + k * step) * SECTOR, image, (at + k // len(stripes) * step) * SECTOR, step * SECTOR)


def copy(map_path, lv_image, into_pvs):
    handles = {}

    def handle(path):
        if path not in handles:
            handles[path] = open(path, "r+b")
        return handles[path]

    with open(lv_image, "rb" if into_pvs else "r+b") as lv:
        for lv_at, image, image_at, length in pieces(map_path):
            for off in range(0, length, 1 << 20):
                n = min(1 << 20, length - off)
                src, src_at = (lv, lv_at + off) if into_pvs else (handle(image), image_at + off)
                dst, dst_at = (handle(image), image_at + off) if into_pvs else (lv, lv_at + off)
                src.seek(src_at)
                data = src.read(n)
                if data.count(0) == len(data):
                    continue
                dst.seek(dst_at)
                dst.write(data)
    for h in handles.values():
        h.close()


def main(argv):
    if len(argv) >= 5 and argv[1] == "map":
        make_map(argv[2], argv[3], int(argv[4]), argv[5:])
    elif len(argv) == 4 and argv[1] in ("write", "read"):
        copy(argv[2], argv[3], argv[1] == "write")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
