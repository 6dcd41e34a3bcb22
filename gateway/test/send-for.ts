/**
 * Sends `message` `n` times, one after the other, and resolves with how many sends completed
 * before `ms` passed: with flow control working, sends to a peer that does not read stop early.
 * The sends go on in the background (their failures ignored) once it resolves.
 */
export async function sendFor(send: (m: Uint8Array) => Promise<void>, message: Uint8Array, n: number, ms: number): Promise<number> {
  let sent = 0;
  const deadline = new Promise<void>((r) => setTimeout(r, ms));
  const pump = (async () => {
    for (let i = 0; i < n; i++) {
      await send(message);
      sent++;
    }
  })();
  pump.catch(() => undefined);
  await Promise.race([pump, deadline]);
  return sent;
}
