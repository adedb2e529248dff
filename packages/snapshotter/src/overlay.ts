/** A mount as containerd's API carries it (containerd.types.Mount). */
export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** What a mount needs to know of a snapshot: its directories. */
export interface Layout {
  kind: "view" | "active" | "committed";
  /** Its own directory: the upper (active) or the layer's files (committed local). */
  fs: string;
  work: string;
  /** The parents' file trees, the immediate parent first (overlayfs lowerdir order). */
  lowers: string[];
}

/**
 * The mounts of a snapshot, as containerd's overlayfs snapshotter gives them
 * (snapshots/overlay/overlay.go `mounts`): no parent: a bind of its own directory (read-only
 * for a view); a view of one layer: a read-only bind of it; an active snapshot: overlay of its
 * upper and work over the parents; a view of several: a read-only overlay of the parents.
 * `extra` are options the kernel asks for (`index=off` where overlay has an index feature).
 */
export function mountsFor(s: Layout, extra: readonly string[] = []): Mount[] {
  if (s.lowers.length === 0) {
    const ro = s.kind === "active" ? "rw" : "ro";
    return [{ type: "bind", source: s.fs, options: [ro, "rbind"] }];
  }
  if (s.kind !== "active") {
    if (s.lowers.length === 1) {
      return [{ type: "bind", source: s.lowers[0], options: ["ro", "rbind"] }];
    }
    return [
      { type: "overlay", source: "overlay", options: [...extra, `lowerdir=${s.lowers.join(":")}`] },
    ];
  }
  return [
    {
      type: "overlay",
      source: "overlay",
      options: [
        ...extra,
        `workdir=${s.work}`,
        `upperdir=${s.fs}`,
        `lowerdir=${s.lowers.join(":")}`,
      ],
    },
  ];
}
