"""Method colours: keyed by name, independent of order, distinct."""

from regbench.report.palette import method_palette


def test_colours_depend_on_the_set_of_methods_not_their_order():
    assert method_palette(["voxelmorph", "affine", "identity"]) == method_palette(["identity", "voxelmorph", "affine"])


def test_first_sorted_method_gets_the_first_tab10_colour():
    # tab10 starts with blue #1f77b4, then orange #ff7f0e; "affine" sorts before "identity"
    assert method_palette(["identity", "affine"]) == {"affine": "#1f77b4", "identity": "#ff7f0e"}


def test_many_methods_still_get_distinct_colours():
    names = [f"m{i:02d}" for i in range(14)]
    assert len(set(method_palette(names).values())) == 14
