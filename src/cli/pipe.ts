// `blessd check | head -2`: once the reader of our output is gone, there is nobody left to tell anything. End
// quietly (exit 0, as coreutils do under SIGPIPE's default), instead of an unhandled EPIPE stack trace.
export function quietOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
}
