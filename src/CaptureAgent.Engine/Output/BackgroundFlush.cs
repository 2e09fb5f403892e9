using System.Runtime.ExceptionServices;

namespace CaptureAgent.Output;

/// <summary>
/// The dump file's periodic fsync, run beside the copy instead of stalling it: the writer starts
/// one at a checkpoint and collects it at the next, so the device writes while pages are read and
/// compressed (each fsync of 32 MiB stopped the copy for 30–40 ms on a local disk, longer on NFS).
/// Only for sinks whose flush may run while writes go on (<see cref="IDumpSink.FlushesConcurrently"/>:
/// a file's fsync covers what was written before it began). One thread, started on first use and
/// handed work without allocating; a failure is kept and thrown to the writer when collected.
/// </summary>
internal sealed class BackgroundFlush : IDisposable
{
    private const int StackBytes = 256 << 10;   // it only calls fsync
    private readonly IDumpSink _sink;
    private readonly SemaphoreSlim _go = new(0), _done = new(0);
    private Thread? _thread;
    private volatile bool _stopping;
    private Exception? _error;
    private bool _running;

    public BackgroundFlush(IDumpSink sink) => _sink = sink;

    /// <summary>Begins a flush of everything written so far. The one begun before must have been collected.</summary>
    public void Start()
    {
        if (_running) throw new InvalidOperationException("the previous flush was not collected");
        if (_thread is null)
        {
            _thread = new Thread(Loop, StackBytes) { IsBackground = true, Name = "flush" };
            _thread.Start();
        }
        _running = true;
        _go.Release();
    }

    /// <summary>True when no flush is running or the one begun last has ended: <see cref="Collect"/> will not wait.</summary>
    public bool Finished => !_running || _done.CurrentCount > 0;

    /// <summary>
    /// Waits for the flush begun last and throws what it failed with. True when a flush was
    /// running and succeeded; false when none was running.
    /// </summary>
    public bool Collect()
    {
        if (!_running) return false;
        _done.Wait();
        _running = false;
        if (_error is { } e)
        {
            _error = null;
            ExceptionDispatchInfo.Throw(e);
        }
        return true;
    }

    private void Loop()
    {
        while (true)
        {
            _go.Wait();
            if (_stopping) return;
            try
            {
                _sink.Flush();
            }
            catch (Exception e)   // kept for the writer: a thread's unhandled exception would end the process
            {
                _error = e;
            }
            _done.Release();
        }
    }

    /// <summary>Waits for a flush still running (its failure no longer matters), then ends the thread.</summary>
    public void Dispose()
    {
        if (_running) _done.Wait();
        _running = false;
        _stopping = true;
        _go.Release();
        _thread?.Join();
        _go.Dispose();
        _done.Dispose();
    }
}
