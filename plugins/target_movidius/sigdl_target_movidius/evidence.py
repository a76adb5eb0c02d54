"""The published measurements behind this emulator, with its predictions and their errors.

Written by ``bench/emulation_calibration.py --fit``; do not edit by hand (rerun it).
"""

from sigdl_core.interfaces import CalibrationRow

EVIDENCE: tuple[CalibrationRow, ...] = (
    CalibrationRow(target='movidius-ma2450', model='GoogLeNet (BVLC Caffe), 224²', quantity='latency_ms', published=88.66, predicted=76.820345, source='movidius/ncsdk docs/tools/profile.md (mvNCProfile -s 12, NCSDK 1.09)', set='calibration', sets=('rate_conv3x3', 'rate_convkxk', 'rate_conv1x1'), options={'usb': False}, method='analytical', note='on-device 76.8 ms, USB 16.5 ms'),
    CalibrationRow(target='movidius-ma2450', model='Inception v3 (TF-slim), 299²', quantity='latency_ms', published=323.57, predicted=312.531462, source='movidius/ncappzoo tensorflow/inception/README.md (on-device profile)', set='calibration', sets=('rate_convkxk', 'rate_conv3x3', 'rate_conv1x1'), options={'usb': False}, method='analytical', note='on-device 312.5 ms, USB 29.4 ms'),
    CalibrationRow(target='movidius-ma2450', model='Inception-ResNet v2, 299²', quantity='latency_ms', published=740.28, predicted=716.777601, source='movidius/ncappzoo tensorflow/inception_resnet_v2/README.md (on-device profile)', set='calibration', sets=('rate_conv1x1', 'rate_convkxk', 'rate_conv3x3', 'pass_bandwidth'), options={'usb': False}, method='analytical', note='on-device 716.8 ms, USB 29.4 ms'),
    CalibrationRow(target='movidius-ma2450', model='MobileNet-SSD (Caffe, VOC), 300²', quantity='latency_ms', published=80.41, predicted=80.411163, source='movidius/ncappzoo apps/object-detector/README.md (on-device TIME_TAKEN)', set='calibration', sets=('rate_conv1x1', 'rate_depthwise'), options={'usb': False}, method='analytical', note='on-device 80.4 ms, USB 34.7 ms'),
    CalibrationRow(target='movidius-ma2450', model='SqueezeNet v1.0 (Caffe), 227²', quantity='latency_ms', published=53.0, predicted=57.925017, source='movidius/ncappzoo apps/benchmarkncs (host loop incl. USB, 18.86 fps)', set='calibration', sets=('rate_conv3x3', 'rate_convkxk', 'rate_conv1x1'), options={'usb': True}, method='analytical', note='on-device 40.9 ms, USB 17.0 ms'),
    CalibrationRow(target='movidius-ma2450', model='DenseNet-121, 224²', quantity='latency_ms', published=199.0, predicted=202.88667, source='opencv/opencv PR #13539 (OpenCV + OpenVINO MYRIAD, incl. USB)', set='calibration', sets=('pass_bandwidth', 'rate_conv1x1', 'rate_conv3x3'), options={'usb': True}, method='analytical', note='on-device 186.3 ms, USB 16.5 ms'),
    CalibrationRow(target='movidius-ma2450', model='GoogLeNet (BVLC Caffe), 224²', quantity='latency_ms', published=105.2, predicted=93.359994, source='opencv/opencv PR #11587 (GoogLeNet through OpenCV, incl. USB)', set='calibration', sets=('usb_bandwidth',), options={'usb': True}, method='analytical', note='on-device 76.8 ms, USB 16.5 ms'),
    CalibrationRow(target='movidius-ma2450', model='MobileNet v1 1.0, 224²', quantity='latency_ms', published=38.0, predicted=42.022727, source='forum report quoted in issue 4 (NCS v1, NCSDK; ±30 %)', set='held-out', sets=(), options={'usb': False}, method='analytical', note='on-device 42.0 ms, USB 16.5 ms'),
)
