// Overview — who may take a connection slot of the control socket. Pure bookkeeping, no I/O.
//
// Every member of socket.group may connect; none of them may lock out root. So: the last `rootSlots` of
// `maxClients` are root's alone (blessctl, reload, out-of-process scanners registering), and each other uid holds at
// most `maxClientsPerUid` at once, so one member cannot fill the shared slots either.
export interface AdmissionLimits {
  maxClients: number;
  rootSlots: number;
  maxClientsPerUid: number;
}

export class Admission {
  private readonly byUid = new Map<number, number>();
  private total = 0;

  constructor(private readonly limits: AdmissionLimits) {}

  /** Take a slot for `uid`, or say why not (the message goes to the refused client). */
  admit(uid: number): { ok: true } | { ok: false; message: string } {
    const l = this.limits;
    if (this.total >= l.maxClients) return { ok: false, message: `at most ${l.maxClients} clients at once` };
    if (uid !== 0) {
      if (this.total >= l.maxClients - l.rootSlots) return { ok: false, message: `the last ${l.rootSlots} of ${l.maxClients} client slots are kept for root` };
      if ((this.byUid.get(uid) ?? 0) >= l.maxClientsPerUid) return { ok: false, message: `at most ${l.maxClientsPerUid} connections per uid (uid ${uid})` };
    }
    this.byUid.set(uid, (this.byUid.get(uid) ?? 0) + 1);
    this.total++;
    return { ok: true };
  }

  release(uid: number): void {
    const n = this.byUid.get(uid) ?? 0;
    if (n <= 1) this.byUid.delete(uid);
    else this.byUid.set(uid, n - 1);
    this.total = Math.max(0, this.total - 1);
  }
}
