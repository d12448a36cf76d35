"""Image and stack input/output of the core: readers, atomic writers, data-set discovery.

* :func:`load_stack` opens two or more files, a folder or a multi-page TIFF as a :class:`Stack`
  whose frames decode on demand; :func:`read_image` decodes one file.
* :func:`write_image`, :func:`write_result` and :func:`write_maps` write atomically and never
  replace an input; :func:`check_output_path` checks a destination before a long run. All of
  them go through the output policy (:class:`OutputPlan`): a run declares its outputs, they are
  checked before work starts and published together, no-clobber, at its end.
* :func:`discover_dataset` lists the scenes of an evaluation data set.
"""

from focusstudio.core.io.discovery import Scene, discover_dataset
from focusstudio.core.io.formats import IMAGE_EXTENSIONS, RAW_EXTENSIONS, is_image_name
from focusstudio.core.io.output_policy import OutputPlan, publish_bytes
from focusstudio.core.io.readers import (
    apply_orientation,
    decode_frame,
    probe_image,
    read_image,
    read_image_with_dtype,
)
from focusstudio.core.io.stacks import list_folder_images, load_stack, natural_sorted
from focusstudio.core.io.writers import (
    OUTPUT_EXTENSIONS,
    atomic_output,
    atomic_write_text,
    check_output_path,
    expected_map_files,
    map_file_names,
    output_dtype,
    output_format,
    render_map,
    write_image,
    write_map,
    write_maps,
    write_result,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "OUTPUT_EXTENSIONS",
    "RAW_EXTENSIONS",
    "OutputPlan",
    "Scene",
    "apply_orientation",
    "atomic_output",
    "atomic_write_text",
    "check_output_path",
    "decode_frame",
    "discover_dataset",
    "expected_map_files",
    "is_image_name",
    "list_folder_images",
    "load_stack",
    "map_file_names",
    "natural_sorted",
    "output_dtype",
    "output_format",
    "probe_image",
    "publish_bytes",
    "read_image",
    "read_image_with_dtype",
    "render_map",
    "write_image",
    "write_map",
    "write_maps",
    "write_result",
]
