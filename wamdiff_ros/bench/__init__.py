"""Every ``wamdiff bench`` benchmark: one module per benchmark, shared timing and report plumbing in
:mod:`wamdiff_ros.bench.report`."""
