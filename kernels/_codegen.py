"""LLVM IR building blocks shared by the cpu backend's intrinsics (cpu.py, cpu_tiles.py,
cpu_long.py)."""
from llvmlite import ir


def counted_loop(builder, n, carried, body, name="loop"):
    """Emit ``for t in range(n)`` (t, n: i64) carrying SSA values through it.

    carried: [(initial value, LLVM type)]; body(t, values) emits one iteration at the
    builder's position and returns the next values, in the same order.  Leaves the
    builder after the loop and returns the values there (those of the last iteration, or
    the initial ones when n <= 0)."""
    i64 = ir.IntType(64)
    pre = builder.block
    head = builder.append_basic_block(f"{name}.head")
    loop = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(head)
    builder.position_at_end(head)
    t = builder.phi(i64)
    t.add_incoming(ir.Constant(i64, 0), pre)
    phis = []
    for init, ty in carried:
        phi = builder.phi(ty)
        phi.add_incoming(init, pre)
        phis.append(phi)
    builder.cbranch(builder.icmp_signed("<", t, n), loop, done)
    builder.position_at_end(loop)
    nxt = body(t, phis)
    blk = builder.block
    t.add_incoming(builder.add(t, ir.Constant(i64, 1)), blk)
    for phi, val in zip(phis, nxt):
        phi.add_incoming(val, blk)
    builder.branch(head)
    builder.position_at_end(done)
    return phis
