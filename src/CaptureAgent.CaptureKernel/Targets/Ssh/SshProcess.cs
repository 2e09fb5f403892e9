using System.Diagnostics;
using System.Text;

namespace CaptureAgent.Targets.Ssh;

/// <summary>
/// One run of the OpenSSH client with a remote command: its stdin is ours to stream into, its
/// stdout and stderr are drained by two reader threads into small bounded buffers (so ssh never
/// blocks on them), and a watchdog kills it when a write has been stuck longer than the idle
/// timeout. Dispose always leaves the process exited and reaped.
/// </summary>
internal sealed class SshProcess : IDisposable
{
    private const int MaxStdout = 64 << 10;
    private const int StderrLines = 20;

    private readonly Process _process;
    private readonly Thread _stdoutThread, _stderrThread;
    private readonly MemoryStream _stdout = new();
    private readonly ManualResetEventSlim _lineSeen = new();
    private readonly Queue<string> _stderr = new();
    private readonly Timer _watchdog;
    private readonly TimeSpan _idle;
    private long _writeSince = -1;   // Stopwatch timestamp of the write in progress, or -1
    private bool _killed;

    public Stream Input { get; }

    public SshProcess(string sshPath, IEnumerable<string> args, TimeSpan idleTimeout)
    {
        var psi = new ProcessStartInfo(sshPath)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _idle = idleTimeout;
        try
        {
            _process = Process.Start(psi) ?? throw new IOException($"{sshPath} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new IOException($"cannot run {sshPath}: {e.Message}");
        }
        _stderrThread = new Thread(ReadStderr) { IsBackground = true, Name = "ssh-stderr" };
        _stderrThread.Start();
        _stdoutThread = new Thread(ReadStdout) { IsBackground = true, Name = "ssh-stdout" };
        _stdoutThread.Start();
        Input = new WatchedStream(_process.StandardInput.BaseStream, this);
        _watchdog = new Timer(_ => Check(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private void ReadStdout()
    {
        var buf = new byte[4096];
        var s = _process.StandardOutput.BaseStream;
        try
        {
            int n;
            while ((n = s.Read(buf, 0, buf.Length)) > 0)
            {
                lock (_stdout)
                    if (_stdout.Length < MaxStdout) _stdout.Write(buf, 0, (int)Math.Min(n, MaxStdout - _stdout.Length));
                if (Array.IndexOf(buf, (byte)'\n', 0, n) >= 0) _lineSeen.Set();
            }
        }
        catch (IOException) { }
        catch (ObjectDisposedException) { }
        _lineSeen.Set();   // end of output: whoever waits for a line learns there is none
    }

    /// <summary>Keeps the last lines, each cut to 400 characters; a line longer than 4 KiB is cut there.</summary>
    private void ReadStderr()
    {
        var reader = _process.StandardError;
        var line = new StringBuilder();
        var buf = new char[1024];
        void Keep()
        {
            string l = line.ToString().TrimEnd('\r');
            line.Clear();
            if (l.Length == 0) return;
            lock (_stderr)
            {
                _stderr.Enqueue(l.Length > 400 ? l[..400] : l);
                while (_stderr.Count > StderrLines) _stderr.Dequeue();
            }
        }
        try
        {
            int n;
            while ((n = reader.Read(buf, 0, buf.Length)) > 0)
                for (int i = 0; i < n; i++)
                    if (buf[i] == '\n') Keep();
                    else if (line.Length < 4096) line.Append(buf[i]);
        }
        catch (IOException) { }
        catch (ObjectDisposedException) { }
        Keep();
    }

    private void Check()
    {
        long since = Interlocked.Read(ref _writeSince);
        if (since >= 0 && Stopwatch.GetElapsedTime(since) > _idle) Kill();
    }

    /// <summary>What ssh printed on stdout so far.</summary>
    public string Stdout
    {
        get { lock (_stdout) return Encoding.UTF8.GetString(_stdout.GetBuffer(), 0, (int)_stdout.Length); }
    }

    /// <summary>ssh's (or the remote command's) last error lines.</summary>
    public List<string> StderrLinesSnapshot()
    {
        lock (_stderr) return _stderr.ToList();
    }

    public string? LastError => StderrLinesSnapshot() is { Count: > 0 } l ? l[^1] : null;

    /// <summary>True when the watchdog or a timeout killed ssh.</summary>
    public bool Killed => _killed;

    /// <summary>
    /// Waits for the first line on stdout (the remote command's "ready"); false when ssh ended
    /// without one. A timeout kills ssh and returns false.
    /// </summary>
    public bool WaitForLine(string expected, TimeSpan timeout)
    {
        if (!_lineSeen.Wait(timeout)) Kill();
        string first = Stdout.Split('\n')[0];
        return first == expected && Stdout.Contains('\n');
    }

    /// <summary>Ends our side of the input and waits for ssh to exit (killing it after the timeout); its exit status.</summary>
    public int Finish(TimeSpan timeout)
    {
        try { Input.Dispose(); }
        catch (IOException) { }   // already broken: the status says why
        if (!_process.WaitForExit(timeout)) Kill();
        // Bounded even then: a process left behind holding ssh's stderr must not hang the capture.
        _process.WaitForExit(TimeSpan.FromSeconds(10));
        // ssh has exited: its pipes end now, unless something it started still holds them.
        _stderrThread.Join(TimeSpan.FromSeconds(5));
        _stdoutThread.Join(TimeSpan.FromSeconds(5));
        return _process.HasExited ? _process.ExitCode : -1;
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _killed = true;
                _process.Kill();
            }
        }
        catch (InvalidOperationException) { }
        catch (System.ComponentModel.Win32Exception) { }
    }

    public void Dispose()
    {
        _watchdog.Dispose();
        Kill();
        try { _process.WaitForExit(TimeSpan.FromSeconds(10)); } catch (InvalidOperationException) { }
        try { Input.Dispose(); } catch (IOException) { }
        _process.Dispose();
        _lineSeen.Dispose();
    }

    /// <summary>ssh's stdin, with each write timed for the watchdog.</summary>
    private sealed class WatchedStream(Stream inner, SshProcess owner) : Stream
    {
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Interlocked.Exchange(ref owner._writeSince, Stopwatch.GetTimestamp());
            try { inner.Write(buffer); }
            finally { Interlocked.Exchange(ref owner._writeSince, -1); }
        }

        public override void Flush()
        {
            Interlocked.Exchange(ref owner._writeSince, Stopwatch.GetTimestamp());
            try { inner.Flush(); }
            finally { Interlocked.Exchange(ref owner._writeSince, -1); }
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
